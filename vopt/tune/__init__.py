"""`vopt tune`: build the candidates a target's scheme and runtime allow, time them interleaved on the
target's runtime, and keep the fastest one that passes the recipe's gates."""
