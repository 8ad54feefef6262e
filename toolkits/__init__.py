"""Ready-made tool packs for tool-bridge. Each pack is a factory returning a `bridge.Toolset`."""
