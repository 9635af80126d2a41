"""The stack's HTTP side: bluesky-httpserver as SIBYLS runs it, its extensions, pushed updates, the page.

=====================  ==========================================================================
``server``             httpserver with the own-items rule (ASGI middleware)
``extensions``         the custom router: the page, dry runs, plate sheets, results, files, exports
``events``             the events hub: manager status, console, progress as Server-Sent Events
``web/``               the page (plain HTML, CSS, JavaScript)
=====================  ==========================================================================
"""
