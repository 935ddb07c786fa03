class Env: pass
