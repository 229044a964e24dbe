"""``lagscope cert``: a local development CA for https://localhost, as mkcert does it.

:mod:`~lagscope.cert.authority` makes the certificates (pure), :mod:`~lagscope.cert.files`
keeps them in the per-user data directory, :mod:`~lagscope.cert.trust` plans and runs the
trust-store commands (current user only unless ``--system``), :mod:`~lagscope.cert.cli` is
the command. ``serve --https`` and the demo use the same files.
"""
