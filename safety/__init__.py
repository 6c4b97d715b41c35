"""vertebra.safety"""
