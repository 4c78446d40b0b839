"""The History page's logic: list, search, analyse and export past conversations. Pure functions over a Store,
whichever engine it runs on; the SQL is the store's (chat/store/).

- :mod:`~chat.history.listing`: conversations matching the filters, one conversation, the filters' choices.
- :mod:`~chat.history.search`: ranked full-text search over a window of the newest matches, and its snippets.
- :mod:`~chat.history.analytics`: the cards, usage per day and model, per user.
- :mod:`~chat.history.export`: a conversation as Markdown or JSON; a list of conversations as CSV.
- :mod:`~chat.history.filtering`: one conversation against the filters (the open transcript), no query.
- :mod:`~chat.history.charts`: the daily charts as Vega-Lite specs.
"""
