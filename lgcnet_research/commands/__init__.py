"""`lgcnet search`, `lgcnet train` and `lgcnet lut`: registered with the SDK's CLI through the
`lgcnet.commands` entry-point group (the SDK never imports this package)."""
