"""The verifiable-skills testbed: programmatic questions with checkable answers, on a CPU in minutes."""
