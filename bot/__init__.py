"""bot: mediabot's signaling side and its programs.

* ``bot.app.Bot`` — a bot on the Microsoft Graph calls API: the webhook with callback-token
  checks (``bot.webhook``), call state machines and operations (``bot.calls``), the Graph
  client (``bot.graph``), configuration (``bot.config``), the operators' control API
  (``bot.control``) and the ``mediabot`` command line (``bot.cli``);
* ``bot.media`` — the one seam to the media stack: the ``MediaProvider`` protocol and
  ``CallMediaProvider``, which binds each call to ``mediacore.CallMedia``; it is the only
  module of the bot that imports ``mediacore``, and only its public names;
* ``bot.emulator`` — the local Teams emulator (Graph calls service and media side), a program
  of its own (``mediabot emulator``) that a bot reaches only over Graph HTTP and UDP media;
* ``bot.demo`` — ``mediabot demo`` and ``mediabot load``, built on the public API.
"""
