-- Run once, when the postgres volume is first created (docker-compose.yml): the API's client
-- store in a database of its own, beside Dagster's (POSTGRES_DB).
CREATE DATABASE platform;
