"""Generated flows and the machinery that kills them, for the recovery property tests.

``interpreter`` holds one generic ``@flow`` that runs a flow given as data (a list of
steps), so any generated flow can be started, killed and resumed by another process.
``crashing`` makes a process die at a chosen point: the k-th journal append, half-way
through an append (transaction open), inside a checkpoint body, or during a model
request. Both run in the test process and in child processes
(``python -m tests.prop_flows.interpreter``). ``harness`` drives them in this process
and keeps the books; ``children`` does the same with real child processes; ``worker``
runs many executions at once for the concurrency tests; ``retried`` is a flow with
``@flow(retries=1)``.
"""
