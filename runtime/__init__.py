"""vertebra.runtime"""
