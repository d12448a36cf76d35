"""The window's controllers: each owns one kind of work the window does, between its widgets and the workspace.

:class:`~focusstudio.core.workspace.Workspace` holds the session's state (Qt-free);
:class:`~focusstudio.gui.main_window.MainWindow` builds the widgets and wires them to these
controllers, which start the background jobs, store what comes back in the workspace and show it:
opening stacks (:mod:`.stack`), the method and its parameters (:mod:`.methods`), fusion and live
post-processing (:mod:`.fusion`), what the viewer shows (:mod:`.display`), metrics (:mod:`.metrics`)
and export (:mod:`.export`).
"""
