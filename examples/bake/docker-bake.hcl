# kiln bake example: `npx kiln bake -f examples/bake/docker-bake.hcl --root .kiln-demo` from the
# repository root (as with buildx, contexts are relative to where bake runs). Both targets share
# the demo's greeter and counter stages: those steps run once.

variable "GREETING" {
  default = "Hello from kiln bake"
}

group "default" {
  targets = ["app", "greeting"]
}

target "app" {
  context = "examples/demo"
  args    = { GREETING = GREETING }
  tags    = ["demo:bake"]
  output  = ["type=oci,dest=examples/bake/out/app.tar"]
}

target "greeting" {
  inherits = ["app"]
  target   = "greeter"
  tags     = []
  output   = ["type=local,dest=examples/bake/out/greeting"]
}
