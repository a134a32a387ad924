"""Backups of a state root and restores of one: `archive` writes one, `restore` reads one back,
`schedule` says when the next is due and which old ones go, `crypto` seals the secrets.

Everything here blocks (disk, SQLite, gzip): callers run it on a worker thread, never on trio's.
"""
