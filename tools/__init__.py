"""vertebra.tools"""
