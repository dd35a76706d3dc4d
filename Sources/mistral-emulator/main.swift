print("mistral-emulator: not yet implemented")
