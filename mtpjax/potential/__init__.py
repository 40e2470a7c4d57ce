"""mtpjax.potential"""
