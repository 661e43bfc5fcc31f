"""The demo meeting: a script of simulated participants (who joins when, what
they say and show), the synthesis of their media, and the `mediabot demo` run."""
