"""One router per resource (offers, events, members, coupons, models, rules, reports, health), each a thin
layer: validate, call the service, shape the answer. ``serving.app.create_app`` includes them."""
