"""Static reference tables for the fictional Lakeside City (湖滨市).

Plain tuples/dataclasses only, so tests and the ETL team can import them
without pulling in numpy or shapely.
"""
from __future__ import annotations

from dataclasses import dataclass

CITY_ID = "LKS"
CITY_NAME_EN = "Lakeside City"
CITY_NAME_ZH = "湖滨市"
CENTER_LON = 120.15
CENTER_LAT = 30.25
TIMEZONE = "Asia/Shanghai"
UTC_OFFSET = "+08:00"


@dataclass(frozen=True)
class Category:
    code: str          # canonical code used across feeds
    label_zh: str      # hotline CSV label
    service_code: str  # Open311 service_code
    name_en: str       # Open311 service_name
    department: str    # Department.code
    sla_hours: int
    share: float       # share of total volume


CATEGORIES: tuple[Category, ...] = (
    Category("noise", "噪音扰民", "NOISE", "Noise", "ENV", 48, 0.12),
    Category("parking", "违章停车", "PARKING", "Illegal parking", "TRAFFIC", 24, 0.10),
    Category("road", "道路破损", "ROAD", "Road damage", "ROADS", 120, 0.07),
    Category("streetlight", "路灯故障", "LIGHT", "Street light out", "ROADS", 72, 0.05),
    Category("sanitation", "环境卫生", "SANITATION", "Rubbish and sanitation", "SANIT", 24, 0.12),
    Category("water_supply", "供水问题", "WATER", "Water supply", "WATER", 24, 0.05),
    Category("drainage", "排水积水", "DRAINAGE", "Drainage and flooding", "WATER", 24, 0.04),
    Category("construction", "施工扰民", "CONSTRUCTION", "Construction nuisance", "URBAN", 72, 0.06),
    Category("vendors", "占道经营", "VENDORS", "Street vendors", "URBAN", 48, 0.06),
    Category("greening", "园林绿化", "GREENING", "Trees and greening", "PARKS", 120, 0.04),
    Category("heating", "供暖问题", "HEATING", "Gas and heating", "HOUSING", 48, 0.03),
    Category("property", "物业管理", "PROPERTY", "Property management", "HOUSING", 168, 0.08),
    Category("transport", "公交出行", "TRANSPORT", "Public transport", "TRANSPORT", 72, 0.05),
    Category("pollution", "环境污染", "POLLUTION", "Pollution", "ENV", 72, 0.04),
    Category("animals", "动物管理", "ANIMALS", "Animals", "URBAN", 48, 0.02),
    Category("consult", "政策咨询", "CONSULT", "Policy enquiry", "GOV", 24, 0.07),
)
CATEGORY_INDEX = {c.code: i for i, c in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class Department:
    code: str
    name_zh: str
    name_en: str
    close_sigma: float  # log-normal spread of time-to-close (long tails)


DEPARTMENTS: tuple[Department, ...] = (
    Department("ENV", "生态环境局", "Environment Bureau", 0.9),
    Department("TRAFFIC", "交警支队", "Traffic Police", 0.8),
    Department("ROADS", "市政设施中心", "Municipal Facilities", 1.0),
    Department("SANIT", "环卫处", "Sanitation Department", 0.8),
    Department("WATER", "水务集团", "Water Authority", 0.9),
    Department("URBAN", "城管局", "Urban Management", 0.9),
    Department("PARKS", "园林局", "Parks Bureau", 1.0),
    Department("HOUSING", "住建局", "Housing Bureau", 1.1),
    Department("TRANSPORT", "交通运输局", "Transport Bureau", 0.9),
    Department("GOV", "政务服务中心", "Government Service Centre", 0.7),
)
# Extra departments that only appear in services/service_cases.csv.
SERVICE_DEPARTMENTS: tuple[Department, ...] = (
    Department("MARKET", "市场监管局", "Market Regulation Bureau", 0.8),
    Department("HRSS", "人社局", "Human Resources and Social Security Bureau", 0.8),
    Department("POLICE", "公安局", "Public Security Bureau", 0.8),
)
DEPARTMENT_INDEX = {d.code: i for i, d in enumerate(DEPARTMENTS + SERVICE_DEPARTMENTS)}

UNKNOWN_CATEGORY_LABELS = ("其他杂项", "测试类别", "未分类")
UNKNOWN_SERVICE_CODES = ("MISC", "TEST_CODE", "OTHER99")

HOTLINE_CHANNELS = ("电话", "微信", "网站", "APP")
HOTLINE_CHANNEL_SHARE = (0.60, 0.18, 0.08, 0.14)
OPEN311_CHANNELS = ("web", "app")
OPEN311_CHANNEL_SHARE = (0.45, 0.55)

# Lifecycle states, same order in both feeds.
STATUS_ZH = ("已受理", "已派单", "处理中", "已办结")
STATUS_OPEN311 = ("received", "dispatched", "in_progress", "closed")
PRIORITY_ZH = ("普通", "紧急")
PRIORITY_EN = ("normal", "urgent")
URGENT_SHARE = 0.05


@dataclass(frozen=True)
class District:
    district_id: str
    name_en: str
    name_zh: str
    # Seed position as a fraction of the city's half-extent (x east, y north).
    fx: float
    fy: float
    weight: float    # >1 shrinks the district (dense central districts)
    streets: int     # number of 街道 inside
    density: float   # peak of the population bump centred on the seed
    low_lying: bool  # hit by the storm


DISTRICTS: tuple[District, ...] = (
    District("D01", "Old Town", "老城区", 0.00, 0.05, 1.6, 12, 1.00, False),
    District("D02", "West Lake", "西湖区", -0.30, 0.02, 1.45, 11, 0.75, False),
    District("D03", "North Bay", "北湾区", 0.02, 0.68, 1.0, 8, 0.20, False),
    District("D04", "Harbour", "港湾区", 0.74, -0.22, 1.0, 8, 0.25, True),
    District("D05", "Riverside", "滨江区", 0.32, -0.62, 1.0, 9, 0.22, True),
    District("D06", "Hi-Tech Park", "高新区", -0.60, 0.52, 1.0, 9, 0.30, False),
    District("D07", "East Gate", "东门区", 0.60, 0.42, 1.0, 8, 0.18, False),
    District("D08", "South Hills", "南山区", -0.40, -0.66, 1.0, 7, 0.10, False),
    District("D09", "Lotus Pond", "荷塘区", 0.30, 0.12, 1.2, 7, 0.35, False),
    District("D10", "Pine Ridge", "松岭区", -0.82, -0.12, 1.0, 7, 0.08, False),
    District("D11", "Willow Bank", "柳岸区", -0.06, -0.36, 1.15, 7, 0.30, True),
    District("D12", "Airport", "空港区", 0.82, -0.70, 1.0, 7, 0.06, False),
)

# Street names: zh = first + second char + 街道, en = word + " Street".
STREET_ZH_FIRST = "东西南北中新明光和平安华兴文青翠金银玉清"
STREET_ZH_SECOND = "湖溪桥塘山林园门港湾堤岭坊苑"
STREET_EN_WORDS = (
    "Maple", "Cedar", "Willow", "Birch", "Elm", "Oak", "Pine", "Linden", "Poplar",
    "Chestnut", "Magnolia", "Camellia", "Lotus", "Orchid", "Jasmine", "Peony",
    "Bamboo", "Plum", "Peach", "Pear", "Apricot", "Cherry", "Osmanthus", "Ginkgo",
    "Cypress", "Laurel", "Hawthorn", "Juniper", "Rowan", "Alder", "Aspen", "Hazel",
    "Holly", "Ivy", "Lilac", "Myrtle", "Olive", "Sage", "Thyme", "Rosemary",
    "Heron", "Crane", "Egret", "Swan", "Kingfisher", "Swallow", "Oriole", "Magpie",
    "Lark", "Finch", "Robin", "Wren", "Falcon", "Harbour", "Bridge", "Ferry",
    "Canal", "Quay", "Wharf", "Lantern", "Pagoda", "Temple", "Garden", "Meadow",
    "Orchard", "Spring", "Brook", "Pond", "Lagoon", "Island", "Cape", "Ridge",
    "Summit", "Valley", "Terrace", "Market", "Silk", "Tea", "Jade", "Pearl",
    "Amber", "Coral", "Crystal", "Silver", "Golden", "Copper", "Iron", "Stone",
    "Cloud", "Rain", "Mist", "Dawn", "Sunset", "Moon", "Star", "Comet", "Aurora",
    "Harmony", "Unity", "Liberty", "Prosperity", "Fortune", "Peace", "Victory",
    "Heritage", "Scholar", "Academy", "Library", "Museum", "Station", "Granary",
)

# Hot spots as fractions of the half-extent; kinds drive per-category density.
NIGHT_MARKETS = ((0.05, 0.02), (-0.28, -0.05), (0.34, 0.15))
CONSTRUCTION_SITES = ((-0.55, 0.45), (0.12, 0.30), (0.62, -0.28), (-0.10, -0.42), (0.40, 0.45))

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚英华玉兰萍鹏辉建国红梅婷雪琳飞斌波宇浩凯欣怡佳慧晨阳帆丹露文博志诚思源子涵雨轩梓萱一诺浩然俊杰晓东海燕春秋嘉琪"

# Hotline description snippets per category (zh).  A few contain ASCII
# commas/quotes on purpose so consumers must honour RFC 4180 quoting.
DESCRIPTIONS_ZH: dict[str, tuple[str, ...]] = {
    "noise": ("楼下商铺音响声音过大，影响休息", "夜间广场舞噪音扰民", "隔壁装修噪音，周末一早就开始", "酒吧深夜噪音严重,多次反映未解决"),
    "parking": ("小区门口车辆乱停，堵塞消防通道", "人行道上长期停放车辆", "路口违停影响通行"),
    "road": ("路面出现大坑，存在安全隐患", "人行道砖块松动破损", "井盖缺失，请尽快处理"),
    "streetlight": ("路灯不亮已有一周", "路灯白天常亮，浪费电", "小区外道路路灯损坏"),
    "sanitation": ("垃圾桶满溢无人清运", "路边垃圾堆积发臭", "公共厕所卫生差"),
    "water_supply": ("家中停水，未收到通知", "自来水发黄有异味", "水压过低，高层无法用水"),
    "drainage": ("道路积水严重，车辆无法通行", "下水道堵塞返水", "雨后小区地下车库进水"),
    "construction": ("工地夜间施工噪音大", "施工扬尘严重", "工地渣土车撒漏"),
    "vendors": ("夜市摊贩占道经营", "小区门口有人占道摆摊,影响通行", "流动摊贩油烟扰民"),
    "greening": ("行道树倒伏需要清理", "绿化带杂草丛生", "树枝遮挡交通信号灯"),
    "heating": ("燃气供应不稳定", "暖气不热，室温过低", "燃气表故障"),
    "property": ("物业不作为，电梯长期故障", "物业费收费不合理", "物业称\"明天处理\"但一直没人来"),
    "transport": ("公交车晚点严重", "希望增设公交线路", "公交司机态度差"),
    "pollution": ("工厂排放异味", "河道水体发黑发臭", "餐馆油烟直排"),
    "animals": ("小区流浪狗伤人", "有人违规饲养家禽", "发现蛇出没"),
    "consult": ("咨询落户政策", "咨询公积金提取流程", "咨询人才补贴申请条件"),
}
DESCRIPTIONS_EN: dict[str, tuple[str, ...]] = {
    "noise": ("Loud music from a shop downstairs", "Late-night noise from a bar", "Renovation noise early on weekends"),
    "parking": ("Cars blocking the fire lane", "Vehicles parked on the pavement", "Illegal parking at the junction"),
    "road": ("Large pothole in the road", "Broken paving stones", "Missing manhole cover"),
    "streetlight": ("Street light out for a week", "Light on during the day", "Several lights broken on my street"),
    "sanitation": ("Overflowing bins not collected", "Rubbish piling up by the road", "Public toilet is dirty"),
    "water_supply": ("No water since this morning", "Tap water is yellow", "Low water pressure on upper floors"),
    "drainage": ("Road flooded after rain", "Blocked drain backing up", "Underground car park flooded"),
    "construction": ("Construction work at night", "Dust from the building site", "Trucks spilling soil"),
    "vendors": ("Vendors blocking the pavement", "Stalls outside the school gate", "Cooking smoke from street stalls"),
    "greening": ("Fallen tree needs removal", "Overgrown verge", "Branches hiding the traffic light"),
    "heating": ("Gas supply unstable", "Heating not warm enough", "Faulty gas meter"),
    "property": ("Lift broken for weeks", "Unfair property fees", "Property manager ignores complaints"),
    "transport": ("Bus always late", "Please add a bus route", "Rude bus driver"),
    "pollution": ("Factory smell", "Black, smelly river water", "Restaurant fumes"),
    "animals": ("Stray dog bit someone", "Poultry kept illegally", "Snake seen in the park"),
    "consult": ("Question about residence registration", "How to withdraw housing fund", "Eligibility for talent subsidy"),
}


@dataclass(frozen=True)
class ServiceItem:
    item_code: str
    name_zh: str
    department: str   # department code
    deadline_days: int
    weight: float


SERVICE_ITEMS: tuple[ServiceItem, ...] = (
    ServiceItem("MK01", "营业执照办理", "MARKET", 3, 0.08),
    ServiceItem("MK02", "营业执照变更", "MARKET", 3, 0.05),
    ServiceItem("MK03", "食品经营许可", "MARKET", 10, 0.03),
    ServiceItem("MK04", "企业注销登记", "MARKET", 10, 0.02),
    ServiceItem("PO01", "户籍迁移", "POLICE", 7, 0.05),
    ServiceItem("PO02", "居住证办理", "POLICE", 7, 0.05),
    ServiceItem("PO03", "身份证换领", "POLICE", 15, 0.06),
    ServiceItem("PO04", "出入境证件办理", "POLICE", 7, 0.04),
    ServiceItem("HR01", "社保卡补办", "HRSS", 5, 0.06),
    ServiceItem("HR02", "社保关系转移", "HRSS", 15, 0.03),
    ServiceItem("HR03", "失业登记", "HRSS", 5, 0.02),
    ServiceItem("HR04", "职业资格证书申领", "HRSS", 20, 0.02),
    ServiceItem("HR05", "退休审批", "HRSS", 20, 0.02),
    ServiceItem("HS01", "不动产登记", "HOUSING", 5, 0.06),
    ServiceItem("HS02", "公积金提取", "HOUSING", 3, 0.06),
    ServiceItem("HS03", "商品房预售许可", "HOUSING", 10, 0.01),
    ServiceItem("HS04", "公租房申请", "HOUSING", 20, 0.02),
    ServiceItem("GV01", "人才补贴申请", "GOV", 15, 0.03),
    ServiceItem("GV02", "政府信息公开申请", "GOV", 15, 0.01),
    ServiceItem("GV03", "婚姻登记预约", "GOV", 1, 0.03),
    ServiceItem("TR01", "道路运输许可", "TRANSPORT", 10, 0.01),
    ServiceItem("TR02", "出租车驾驶员证", "TRANSPORT", 10, 0.01),
    ServiceItem("TF01", "机动车驾驶证换证", "TRAFFIC", 1, 0.04),
    ServiceItem("TF02", "机动车登记", "TRAFFIC", 3, 0.03),
    ServiceItem("EN01", "环评审批", "ENV", 20, 0.01),
    ServiceItem("EN02", "排污许可", "ENV", 20, 0.01),
    ServiceItem("WA01", "用水报装", "WATER", 7, 0.02),
    ServiceItem("UR01", "户外广告设置许可", "URBAN", 10, 0.01),
    ServiceItem("UR02", "临时占道许可", "URBAN", 5, 0.02),
    ServiceItem("PK01", "树木迁移审批", "PARKS", 10, 0.01),
    ServiceItem("SN01", "建筑垃圾处置核准", "SANIT", 5, 0.01),
)
SERVICE_OUTCOMES = ("approved", "rejected", "withdrawn")
SERVICE_RATINGS = ("好评", "中评", "差评")


@dataclass(frozen=True)
class SensorKind:
    kind: str
    prefix: str
    metric: str
    unit: str
    share: float
    decimals: int
    warn: float
    alarm: float
    low_is_bad: bool   # speed alarms when *below* the threshold
    name_en: str
    name_zh: str


SENSOR_KINDS: tuple[SensorKind, ...] = (
    SensorKind("air", "AQ", "pm25", "µg/m³", 0.30, 1, 75.0, 115.0, False, "Air Quality Station", "空气质量监测站"),
    SensorKind("water_level", "WL", "water_level_m", "m", 0.20, 2, 2.5, 3.0, False, "Water Level Gauge", "水位监测点"),
    SensorKind("traffic", "TR", "speed_kmh", "km/h", 0.30, 1, 25.0, 15.0, True, "Traffic Detector", "交通流量检测器"),
    SensorKind("noise", "NS", "noise_db", "dB(A)", 0.20, 1, 70.0, 80.0, False, "Noise Monitor", "噪声监测点"),
)
READING_STATUSES = ("ok", "fault", "low_battery")

# Defect kinds per feed (see defects.py / docs/DEMO_CITY.md).
HOTLINE_DEFECTS = (
    "missing_coordinates", "swapped_coordinates", "outside_city", "unparseable_timestamp",
    "future_timestamp", "closed_before_created", "unknown_category", "mixed_encoding", "duplicate",
)
OPEN311_DEFECTS = ("missing_coordinates", "unknown_category", "unparseable_timestamp", "duplicate")
READINGS_DEFECTS = ("unparseable_timestamp", "unknown_sensor", "duplicate")

HOTLINE_COLUMNS = (
    "case_id", "created_at", "dispatched_at", "closed_at", "due_at", "updated_at", "channel",
    "category", "department", "address", "lat", "lon", "status", "priority", "caller_name",
    "caller_phone", "description", "satisfaction",
)
SERVICE_COLUMNS = (
    "case_id", "item_code", "item_name", "department", "channel", "hall_id", "district_id",
    "submitted_at", "deadline_at", "decided_at", "outcome", "rating",
)
READINGS_COLUMNS = ("sensor_id", "ts", "value", "status")


def department(code: str) -> Department:
    return (DEPARTMENTS + SERVICE_DEPARTMENTS)[DEPARTMENT_INDEX[code]]
