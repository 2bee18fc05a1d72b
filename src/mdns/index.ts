export { createAdvertiser, type Advertiser, type AdvertiserOptions } from './advertiser.ts';
export { browse, browseDispatch, type BrowseOptions, type FoundService } from './browse.ts';
export { Sightings } from './discovery.ts';
export { pickLinks, usableAddress, type InterfaceTable, type LinkInfo } from './interfaces.ts';
export { DEFAULT_PATH, MDNS_ADDRESS, MDNS_PORT, SERVICE_TYPE } from './records.ts';
