"""Small flows that the subprocess tests run, kill and resume.

Each module is self-contained (no imports between them) so it runs the same way as a
package module (``python -m tests.flows.NAME``) and as a script (``python NAME.py``).
Behaviour that a test changes between the first process and the resuming one is read
from environment variables at call time.
"""
