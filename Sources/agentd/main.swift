print("agentd: not yet implemented")
