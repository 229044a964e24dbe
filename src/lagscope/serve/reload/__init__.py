"""``lagscope serve --reload``: edit the code, reload the page, keep the connections.

A long-lived front process (:mod:`~lagscope.serve.reload.run`, its HTTP side
:mod:`~lagscope.serve.reload.front`) owns the listening sockets and the client
connections; app processes (:mod:`~lagscope.serve.reload.child`) come and go behind it, the
client's facts travelling with each request (:mod:`~lagscope.serve.reload.facts`); the
watcher (:mod:`~lagscope.serve.reload.watch`) says when.
"""
