"""The Redis bus: the channel scheme (`channels`, stdlib only, shared with the app SDK)
and the bridge's codec and worker threads (used by `homehelper.actors.bridge`)."""
