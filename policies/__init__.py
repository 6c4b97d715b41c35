"""vertebra.policies"""
