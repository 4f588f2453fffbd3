-- One database per service, as the platform expects (each service owns its data).
CREATE DATABASE aisaas_user;
CREATE DATABASE aisaas_ai;
