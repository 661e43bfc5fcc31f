"""bot: mediabot's signaling side (Microsoft Graph calls API, webhooks, call state).

It never imports the native module; media goes through ``mediacore``.
"""
