"""The published JSON Schemas of lagscope's saved files, shipped with the package so that
``--load`` validates against exactly what the docs publish (see lagscope.saved)."""
