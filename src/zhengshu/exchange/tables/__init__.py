"""Table exchange (库表交换): sync jobs from an authorized mounted resource to a consumer target."""
