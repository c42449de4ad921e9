"""Target modules: one small class per API over the shared client."""
