"""mtpjax.md"""
