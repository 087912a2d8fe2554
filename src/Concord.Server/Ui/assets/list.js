'use strict';
Concord.notifyOnChanges();
