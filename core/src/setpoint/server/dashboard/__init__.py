"""The web dashboard under /ui: server-rendered pages for people, beside the JSON API.

=========================================  ===========  ==========================================
path                                       auth         what
=========================================  ===========  ==========================================
GET  /ui/login, POST /ui/login             none         a token becomes a session cookie
POST /ui/logout                            session+CSRF ends the session
GET  /ui/                                  session      overview of every target (filters; live)
GET  /ui/events                            session      server-sent events: "something changed"
GET  /ui/targets/{name}                    session      resources, drift, history, audit, deps
GET  /ui/targets/{name}/plans/{plan_id}    session      a held plan's full diff (approve form)
POST /ui/targets/{name}/{call}             admin+CSRF   sync, pause, resume, approve (audited)
GET  /ui/audit[.csv|.json]                 session      changes in a time window, grouped; export
GET  /ui/static/...                        none         the vendored CSS and JavaScript
=========================================  ===========  ==========================================

Pages are built from :mod:`setpoint.views` (the rows the API and the CLI show), actions go through
the status API's own code path (:func:`setpoint.server.status_api.perform`), and every page is
scrubbed of known secret values before it leaves, like every API answer.
"""

from setpoint.server.dashboard.pages import routes

__all__ = ["routes"]
