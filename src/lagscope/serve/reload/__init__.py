"""``lagscope serve --reload``: edit the code, reload the page, keep the connections.

A long-lived front process (:mod:`~lagscope.serve.reload.run`, its accepting
:mod:`~lagscope.serve.reload.front`) owns the listening sockets and hands each client
socket to the current app process (:mod:`~lagscope.serve.reload.handoff`); app processes
(:mod:`~lagscope.serve.reload.child`, their side :mod:`~lagscope.serve.reload.handed`)
come and go, handing their connections back at a switch; the watcher
(:mod:`~lagscope.serve.reload.watch`) says when.
"""
