-- Run once by the postgres:15 image on an empty data volume (docker-compose.yml), as make infra-up does locally.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
