"""mtpjax.active"""
