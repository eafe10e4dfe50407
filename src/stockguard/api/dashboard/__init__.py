"""The operator's dashboard at ``/dashboard``: a login, one server-rendered page, and the JSON it polls.

Everything the page loads ships in this package (``static/``, with uPlot copied in from the npm
registry by ``assets/dashboard/vendor.sh``), so it works with no network beyond the service.
"""
