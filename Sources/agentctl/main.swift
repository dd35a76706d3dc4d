print("agentctl: not yet implemented")
