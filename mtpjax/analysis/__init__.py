"""mtpjax.analysis"""
