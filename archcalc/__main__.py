from archcalc.cli import app

app(prog_name="archcalc")
