-- wrk script: GET one fixed path (a todo, a list page or nginx's static file).
-- Environment: BENCH_PATH (required), plus common.lua's BENCH_OP and BENCH_TOKEN.
-- The request is built once per thread (no request() function), so wrk's Lua
-- costs nothing per request.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

wrk.method = "GET"
wrk.path = assert(os.getenv("BENCH_PATH"), "BENCH_PATH is not set")
