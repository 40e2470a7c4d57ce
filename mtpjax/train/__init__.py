"""mtpjax.train"""
