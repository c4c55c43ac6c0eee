"""Files for services[] (next to the clusters): the Infisical stack's compose file, env file and scripts."""
