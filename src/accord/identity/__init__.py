"""Who is who: Accord's CA, certificates, and the groups they carry."""
