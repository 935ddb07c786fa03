"""Small `.twl` games the tests share."""

# Three players: refused by the learners that handle at most two.
THREE_PLAYERS = """
env ThreeWay
players 3
state t: int
action move(k in 0..2) {
    t = t + 1
    next_player()
}
reset { t = 0 }
done t >= 3
reward[p] 0.0
observe f32([float(t)])
"""
