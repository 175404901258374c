-- wrk: every request a POST of the JSON body in $WRK_BODY (set by bench/run.sh).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("WRK_BODY")
