// Tests arrive with the module they cover.
