"""boundaries/*.geojson: city, grid cells, streets, districts."""
from __future__ import annotations

from . import catalog
from .geography import Geography
from .writers import write_geojson


def write(root: str, geo: Geography) -> list[tuple[str, dict]]:
    city = [({"city_id": catalog.CITY_ID, "name_en": catalog.CITY_NAME_EN, "name_zh": catalog.CITY_NAME_ZH},
             geo.city)]
    grid = [({"grid_id": f"G{i + 1:04d}", "street_id": geo.streets[geo.cell_street[i]]["street_id"],
              "district_id": catalog.DISTRICTS[geo.cell_district[i]].district_id}, geo.cells[i])
            for i in range(geo.n_cells)]
    streets = [({"street_id": s["street_id"], "district_id": catalog.DISTRICTS[s["district"]].district_id,
                 "name_en": s["name_en"], "name_zh": s["name_zh"]}, geo.street_geoms[i])
               for i, s in enumerate(geo.streets)]
    districts = [({"district_id": d.district_id, "name_en": d.name_en, "name_zh": d.name_zh},
                  geo.district_geoms[i]) for i, d in enumerate(catalog.DISTRICTS)]
    return [
        write_geojson(root, "boundaries/city.geojson", city),
        write_geojson(root, "boundaries/grid.geojson", grid),
        write_geojson(root, "boundaries/streets.geojson", streets),
        write_geojson(root, "boundaries/districts.geojson", districts),
    ]
