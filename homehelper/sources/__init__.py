"""Apps added from a source (git, a folder, an archive): fetching and checking (`fetch`, `git`), and
their installed versions and recorded sources (`versions`). The updater actor drives them."""
