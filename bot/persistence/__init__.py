"""The persistence every part of Sportello shares: the engine and transactions (`db`), the
declarative base and column types (`types`), and the plumbing tables that belong to no one
domain (`tables`: counters, channel deliveries and options, outgoing messages). The customer
history is `bot.crm`; the desk's and the conversation log's tables are in their packages."""
