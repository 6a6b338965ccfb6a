-- wrk script: PATCH /api/v1/todos/{id} (JSON merge patch) over a set of ids.
-- Every request sets a title no earlier request used (thread number + counter),
-- so every PATCH is a real change: a new version and updated_at, one write.
-- Environment: BENCH_IDS_FILE (one todo id a line, required), plus common.lua's.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

wrk.headers["Content-Type"] = "application/merge-patch+json"

local ids = {}
local n = 0

function init(args)
    local file = assert(os.getenv("BENCH_IDS_FILE"), "BENCH_IDS_FILE is not set")
    for line in io.lines(file) do
        if #line > 0 then
            ids[#ids + 1] = line
        end
    end
    assert(#ids > 0, "no ids in " .. file)
end

function request()
    n = n + 1
    -- Threads start at different ids so they rarely write the same row at once.
    local id = ids[(n * 7 + thread_id * 101) % #ids + 1]
    local body = string.format('{"title":"bench patch %d-%d"}', thread_id, n)
    return wrk.format("PATCH", "/api/v1/todos/" .. id, nil, body)
end
