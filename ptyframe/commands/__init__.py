"""The core's subcommands, offered through the ``ptyframe_commands`` hook like any plugin's.

``ptyframe.commands.plugin`` (entry point ``ptyframe.commands``) returns ``simulate``,
``reconstruct``, ``plugins`` and ``halfset``; ``ptyframe.cli`` only loads plugins and
dispatches. A plugin adds a command the same way (``ptyframe-lightning``'s
``train-denoiser``, ``ptyframe.report``'s ``report``).
"""
