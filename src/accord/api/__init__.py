"""HTTP APIs: enrollment now; the Marti API later. Meets the rest through the domain."""
