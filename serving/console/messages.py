"""The console's words in English and Chinese: one catalogue, looked up by key.

Only the console's own labels live here. What marketers wrote (rule names, coupon templates,
messages) is shown as it stands in the rule files, in whatever language they wrote it.
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}
DEFAULT_LANGUAGE = "en"

MESSAGES: dict[str, tuple[str, str]] = {
    # key: (English, Chinese)
    "title": ("Next-best-offer console", "次优推荐控制台"),
    "nav.rules": ("Rules", "规则"),
    "nav.try": ("Try it", "试一试"),
    "nav.models": ("Models", "模型"),
    "nav.health": ("Health", "运行状况"),
    "nav.logout": ("Log out", "退出"),
    "signed_in_as": ("Signed in as {role}", "当前角色：{role}"),
    "login.title": ("Sign in with an API key", "使用 API 密钥登录"),
    "login.key": ("API key", "API 密钥"),
    "login.submit": ("Sign in", "登录"),
    "login.help": ("Make one with: nbo keys create --role marketer", "创建密钥：nbo keys create --role marketer"),
    "login.unknown": ("Unknown API key.", "未知的 API 密钥。"),
    "login.console_roles": ("The console is for marketers, data scientists and admins; role {role!r} may not use it.",
                            "控制台仅供营销人员、数据科学家和管理员使用；角色 {role!r} 不能使用。"),
    "error.title": ("Something is not right", "出现问题"),
    "error.forbidden": ("Your role {role!r} may not {permission}.", "你的角色 {role!r} 无权执行 {permission}。"),
    "error.csrf": ("The form is out of date: reload the page and try again.", "表单已过期：请刷新页面后重试。"),
    "error.redis": ("The feature store (Redis) is unavailable; retry shortly.", "特征库（Redis）不可用，请稍后重试。"),
    "error.back": ("Back", "返回"),
    "no_data": ("no data yet", "暂无数据"),
    # rules
    "rules.title": ("Rules", "规则"),
    "rules.version": ("Rules answering now: {version}", "当前生效规则版本：{version}"),
    "rules.none_live": ("No valid rules are live.", "没有生效的有效规则。"),
    "rules.since": ("Measured since", "统计起始日"),
    "rules.show": ("Show", "显示"),
    "rules.col.rule": ("Rule", "规则"),
    "rules.col.status": ("Status", "状态"),
    "rules.col.trigger": ("Trigger", "触发条件"),
    "rules.col.priority": ("Priority", "优先级"),
    "rules.col.budget": ("Budget used / total", "预算已用 / 总额"),
    "rules.col.burn": ("Budget burn-down", "预算消耗"),
    "rules.col.fires": ("Fires per day", "每日触发"),
    "rules.col.redemption": ("Redemption rate", "核销率"),
    "rules.col.lift": ("Lift vs holdout (per member)", "相对对照组提升（每会员）"),
    "rules.col.changed": ("Last change", "最近修改"),
    "rules.col.edit": ("File", "文件"),
    "rules.no_budget": ("no budget", "无预算"),
    "rules.reports_unavailable": ("Measurement (redemption, lift, fires per day) is not available yet.",
                                  "效果统计（核销率、提升、每日触发）暂不可用。"),
    "rules.reports_forbidden": ("Your role may not read measurement reports.", "你的角色无权查看效果报告。"),
    "rules.file_changed": ("file changed {when}", "文件修改于 {when}"),
    "rules.saved_by": ("{when} by {actor}", "{when}，{actor}"),
    "status.live": ("live", "生效中"),
    "status.scheduled": ("scheduled", "已排期"),
    "status.expired": ("expired", "已过期"),
    "status.invalid": ("invalid", "无效"),
    "rules.edit": ("edit", "编辑"),
    "check.title": ("Check a rule file before it goes live", "上线前检查规则文件"),
    "check.file": ("File name (in rules/)", "文件名（rules/ 目录）"),
    "check.text": ("Rule file (YAML)", "规则文件（YAML）"),
    "check.check": ("Check", "检查"),
    "check.save": ("Check and save", "检查并保存"),
    "check.save_needs": ("Saving needs the marketer role.", "保存需要营销人员角色。"),
    "check.result": ("Check of {file}", "{file} 的检查结果"),
    "check.ok": ("No errors: the file may go live.", "没有错误：可以上线。"),
    "check.failed": ("The file has errors; it cannot be saved.", "文件有错误，不能保存。"),
    "check.lint": ("Lint", "语法与规则检查"),
    "check.no_problems": ("no problems", "没有问题"),
    "check.examples": ("Examples", "示例"),
    "check.examples_passed": ("{passed} of {total} examples pass", "{total} 个示例中 {passed} 个通过"),
    "check.no_examples": ("the rule has no examples", "规则没有示例"),
    "check.backtest": ("Backtest on today's members", "以当前会员回测"),
    "check.backtest_over": ("{members} members' live features, as of {day}", "{members} 名会员的实时特征，日期 {day}"),
    "check.backtest_none": ("no members in the feature store to backtest on", "特征库中没有可回测的会员"),
    "check.col.fire": ("would fire", "将触发"),
    "check.col.holdout": ("held out", "对照组"),
    "check.col.coupons": ("coupons", "优惠券"),
    "check.col.face": ("face value", "面值"),
    "check.col.budget": ("budget", "预算"),
    "check.saved": ("Saved {file}; rules now live: {version}.", "已保存 {file}；当前生效规则版本：{version}。"),
    "check.saved_not_live": ("Saved {file}, but the reload was refused: {error}", "已保存 {file}，但重新加载被拒绝：{error}"),
    # try it
    "try.title": ("Try it: the next-best-offer answer", "试一试：次优推荐结果"),
    "try.member": ("Member id", "会员号"),
    "try.store": ("Store", "门店"),
    "try.store_default": ("the member's home store", "会员的常去门店"),
    "try.channel": ("Channel", "渠道"),
    "try.basket": ("Basket: one line each, SKU quantity price", "购物篮：每行一项，SKU 数量 单价"),
    "try.submit": ("Ask", "查询"),
    "try.issues": ("Asking issues real coupons (audited under your key), as a checkout would.",
                   "查询会像收银台一样真实发放优惠券（以你的密钥记入审计日志）。"),
    "try.offers": ("Offers", "优惠"),
    "try.no_offers": ("No offer for this checkout.", "本次结账没有优惠。"),
    "try.reason": ("Why", "原因"),
    "try.conditions": ("Conditions that held", "满足的条件"),
    "try.coupon": ("Coupon", "优惠券"),
    "try.expires": ("expires {when}", "有效期至 {when}"),
    "try.score": ("score", "得分"),
    "try.recommendations": ("Recommendations", "推荐商品"),
    "try.holdout": ("In the control group of", "处于对照组的规则"),
    "try.notes": ("Notes", "说明"),
    "try.degraded": ("Degraded answer (no feature store or no model).", "降级结果（特征库或模型不可用）。"),
    "try.churn": ("Churn probability", "流失概率"),
    "try.high_risk": ("high risk", "高风险"),
    "try.member_card": ("Member", "会员"),
    "try.tier": ("Tier", "等级"),
    "try.tier_progress": ("Tier progress", "等级进度"),
    "try.top_tier": ("top tier reached", "已达最高等级"),
    "try.next_tier": ("to {tier}: {needs}", "距离{tier}：{needs}"),
    "try.need_growth": ("{amount} more growth value", "还需 {amount} 成长值"),
    "try.need_spend": ("{amount} more yuan spent this month", "本月还需消费 {amount} 元"),
    "try.need_referrals": ("{count} more referral", "还需推荐 {count} 人"),
    "try.points": ("Points", "积分"),
    "try.points_value": ("{points} points (worth {yuan} yuan), {expiring} expiring within 30 days",
                         "{points} 积分（价值 {yuan} 元），30 天内到期 {expiring}"),
    "try.features": ("Features", "特征"),
    "try.unknown_member": ("Member {member!r} is not registered.", "会员 {member!r} 未注册。"),
    "try.bad_basket": ("Basket line {line}: {problem}", "购物篮第 {line} 行：{problem}"),
    "try.bad_request": ("The request is not valid: {problem}", "请求无效：{problem}"),
    "try.version": ("model versions: {versions}", "模型版本：{versions}"),
    "tier.regular": ("regular", "普通"),
    "tier.silver": ("silver", "银卡"),
    "tier.gold": ("gold", "金卡"),
    "tier.diamond": ("diamond", "钻石"),
    # models
    "models.title": ("Models", "模型"),
    "models.in_use": ("In use by this server: {versions}", "本服务使用中：{versions}"),
    "models.none": ("No registered versions yet (nbo train ...).", "尚无注册版本（nbo train ...）。"),
    "models.col.version": ("Version", "版本"),
    "models.col.role": ("Role", "角色"),
    "models.col.created": ("Created (UTC)", "创建时间（UTC）"),
    "models.champion": ("champion", "冠军"),
    "models.challenger": ("challenger", "挑战者"),
    "models.forced": ("forced", "强制"),
    "models.metric": ("Metric", "指标"),
    "models.model": ("model", "模型"),
    "models.baseline": ("baseline: {name}", "基线：{name}"),
    "models.plots": ("Plots", "图表"),
    "models.no_plots": ("no plots logged for this version", "此版本没有记录图表"),
    "models.promote": ("Promote", "晋升"),
    "models.promote_help": ("Promotes only if it beats the champion on its own holdout (the CLI's gate).",
                            "仅当在其留出集上优于冠军时才晋升（与命令行相同的门槛）。"),
    "models.promoted": ("{name}: {message}; champion is now version {version}.", "{name}：{message}；冠军现为版本 {version}。"),
    "models.refused": ("{name}: {message}", "{name}：{message}"),
    "models.unknown": ("No version {version} of model {name!r}.", "模型 {name!r} 没有版本 {version}。"),
    # health
    "health.title": ("Health", "运行状况"),
    "health.requests": ("API requests", "API 请求"),
    "health.total": ("Requests served", "已处理请求"),
    "health.rate": ("Request rate", "请求速率"),
    "health.rate_value": ("{rate} / s over the last {seconds} s", "最近 {seconds} 秒 {rate} 次/秒"),
    "health.latency": ("Latency p50 / p95 / p99", "延迟 p50 / p95 / p99"),
    "health.errors": ("Server errors (5xx)", "服务器错误（5xx）"),
    "health.by_route": ("By route", "按路由"),
    "health.route": ("route", "路由"),
    "health.count": ("requests", "请求数"),
    "health.redis": ("Redis", "Redis"),
    "health.redis_ok": ("up, {ms} ms round trip, version {version}", "正常，往返 {ms} 毫秒，版本 {version}"),
    "health.redis_down": ("unavailable: {error}", "不可用：{error}"),
    "health.degraded": ("Degraded mode", "降级模式"),
    "health.degraded_no": ("no: Redis, rules and both models are ready", "否：Redis、规则和两个模型均已就绪"),
    "health.degraded_yes": ("yes: {why}", "是：{why}"),
    "health.degraded_answers": ("Degraded answers since start", "启动以来的降级结果"),
    "health.store": ("Feature store size", "特征库大小"),
    "health.store_value": ("{keys} keys, {memory} of memory", "{keys} 个键，占用内存 {memory}"),
    "health.rules": ("Rules", "规则"),
    "health.models": ("Models", "模型"),
}

_INDEX = {"en": 0, "zh": 1}


def translator(language: str) -> Callable[..., str]:
    """``t(key, **values)`` in ``language`` (an unknown key shows itself, so a gap is visible, not a crash)."""
    index = _INDEX.get(language, 0)

    def t(key: str, **values: object) -> str:
        texts = MESSAGES.get(key)
        if texts is None:
            return key
        return texts[index].format(**values) if values else texts[index]

    return t


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The language chosen on the page (cookie), else the browser's first preference we have, else English."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE
