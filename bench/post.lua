-- wrk script: POST /api/v1/todos, each request a new todo with a unique title;
-- every other one has a description. Environment: as common.lua.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

wrk.headers["Content-Type"] = "application/json"

local n = 0

function request()
    n = n + 1
    local body
    if n % 2 == 0 then
        body = string.format('{"title":"bench post %d-%d","description":"made by wrk, '
            .. 'request %d of thread %d"}', thread_id, n, n, thread_id)
    else
        body = string.format('{"title":"bench post %d-%d"}', thread_id, n)
    end
    return wrk.format("POST", "/api/v1/todos", nil, body)
end
